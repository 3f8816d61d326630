#!/usr/bin/env bash
# Builds a Debian bookworm box for the vagrant-libvirt provider, locally.
#
# Why: public boxes cannot be downloaded on every machine (netlab's own build
# machine reaches only Debian's package mirror), and a box made from stock
# Debian packages is what the VM runs are meant to exercise: the stock Debian
# kernel, whose sch_netem the namespace runs on a netem-less kernel lack.
# Elsewhere any public debian/bookworm64 libvirt box works the same way.
#
# What: debootstrap (stock kernel, openssh, sudo, python3-venv, iproute2,
# ifupdown), a 'vagrant' user with Vagrant's well-known insecure key (a box's
# convention; Vagrant replaces it with a per-VM key on first 'up'), extlinux
# on an MBR disk, then qcow2 + metadata.json + Vagrantfile packed as a .box
# and added as NAME (default netlab/bookworm).
#
# With a wheel folder (numpy, pyroute2 for cp311; netlab prepares one in
# ~/.cache/netlab/vagrant/wheels) the box also carries /opt/netlab/venv with
# them installed natively here, which spares each VM a slow emulated install.
#
# Usage: sudo vagrant/build-box.sh [--name NAME] [--out DIR] [--mirror URL] [--size GB] [--wheels DIR]
set -euo pipefail

NAME="netlab/bookworm"
OUT="${XDG_CACHE_HOME:-$HOME/.cache}/netlab/vagrant"
WHEELS=""  # default: $OUT/wheels when it holds numpy and pyroute2 wheels
MIRROR="http://deb.debian.org/debian"
SIZE_GB=4
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) NAME="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --mirror) MIRROR="$2"; shift 2 ;;
    --size) SIZE_GB="$2"; shift 2 ;;
    --wheels) WHEELS="$2"; shift 2 ;;
    *) echo "build-box.sh: unknown option '$1' (see the usage line at the top)" >&2; exit 2 ;;
  esac
done

[[ $EUID -eq 0 ]] || { echo "build-box.sh: needs root (debootstrap, losetup, mount); run it with sudo" >&2; exit 1; }
for tool in debootstrap qemu-img sfdisk losetup mkfs.ext4 extlinux vagrant; do
  command -v "$tool" >/dev/null || {
    echo "build-box.sh: '$tool' is missing; fix: apt-get install -y debootstrap qemu-utils fdisk mount e2fsprogs extlinux vagrant" >&2; exit 1; }
done
MBR_BIN=/usr/lib/syslinux/mbr/mbr.bin
[[ -f $MBR_BIN ]] || { echo "build-box.sh: $MBR_BIN is missing; fix: apt-get install -y syslinux-common" >&2; exit 1; }
INSECURE_KEY=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub \
               /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -n1 || true)
[[ -n $INSECURE_KEY ]] || { echo "build-box.sh: Vagrant's insecure public key (keys/vagrant.pub) was not found in the vagrant installation; fix: reinstall vagrant" >&2; exit 1; }

started=$(date +%s)
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/build.XXXXXX")
ROOT="$WORK/root"
RAW="$WORK/disk.raw"
LOOP=""
cleanup() {
  set +e
  for sub in tmp/wheels dev/pts dev proc sys; do mountpoint -q "$ROOT/$sub" && umount "$ROOT/$sub"; done
  mountpoint -q "$ROOT" && umount "$ROOT"
  [[ -n $LOOP ]] && losetup -d "$LOOP"
  # never delete through a mount that is still there
  findmnt -rn -o TARGET | grep -q "^$WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

# One MBR partition from 1 MiB; a loop device at that offset (no partscan
# needed, which containers and udev-less machines lack).
truncate -s "${SIZE_GB}G" "$RAW"
echo 'start=2048, type=83, bootable' | sfdisk -q "$RAW"
dd if="$MBR_BIN" of="$RAW" bs=440 count=1 conv=notrunc status=none
LOOP=$(losetup --find --show --offset $((2048 * 512)) "$RAW")
mkfs.ext4 -q -L netlab-root -O ^metadata_csum_seed,^orphan_file "$LOOP"
UUID=$(blkid -s UUID -o value "$LOOP")
mkdir -p "$ROOT"
mount "$LOOP" "$ROOT"

echo "== debootstrap bookworm from $MIRROR"
debootstrap --include=linux-image-amd64,openssh-server,sudo,python3,python3-venv,iproute2,ifupdown,isc-dhcp-client,rsync,ethtool,ca-certificates,procps \
  bookworm "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
  tail -n 30 "$WORK/debootstrap.log" >&2; echo "build-box.sh: debootstrap failed (log above)" >&2; exit 1; }

mount --bind /dev "$ROOT/dev"; mount --bind /dev/pts "$ROOT/dev/pts"
mount -t proc proc "$ROOT/proc"; mount -t sysfs sys "$ROOT/sys"

echo "== configure"
cat >"$ROOT/etc/fstab" <<EOF
UUID=$UUID / ext4 errors=remount-ro 0 1
EOF
echo netlab-box >"$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 netlab-box\n' >"$ROOT/etc/hosts"
cat >"$ROOT/etc/network/interfaces" <<'EOF'
# eth0 is Vagrant's management NIC; Vagrant appends the private networks
source /etc/network/interfaces.d/*
auto lo
iface lo inet loopback
auto eth0
iface eth0 inet dhcp
EOF
mkdir -p "$ROOT/boot/extlinux"
cat >"$ROOT/boot/extlinux/extlinux.conf" <<EOF
DEFAULT debian
TIMEOUT 1
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=UUID=$UUID ro console=ttyS0,115200 net.ifnames=0 biosdevname=0 quiet
EOF
chroot "$ROOT" /bin/sh -e <<EOF
useradd -m -s /bin/bash vagrant
echo 'vagrant:vagrant' | chpasswd
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/vagrant
chmod 440 /etc/sudoers.d/vagrant
install -d -m 700 -o vagrant -g vagrant /home/vagrant/.ssh
echo 'UseDNS no' >/etc/ssh/sshd_config.d/vagrant.conf
systemctl enable ssh >/dev/null 2>&1 || true
systemctl enable serial-getty@ttyS0.service >/dev/null 2>&1 || true
EOF
install -m 600 "$INSECURE_KEY" "$ROOT/home/vagrant/.ssh/authorized_keys"
chroot "$ROOT" chown vagrant:vagrant /home/vagrant/.ssh/authorized_keys
rm -f "$ROOT"/etc/ssh/ssh_host_*  # each VM makes its own (below, on first boot)
cat >"$ROOT/etc/systemd/system/netlab-hostkeys.service" <<'EOF'
[Unit]
Description=SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=multi-user.target
EOF
chroot "$ROOT" systemctl enable netlab-hostkeys.service >/dev/null 2>&1
WHEELS="${WHEELS:-$OUT/wheels}"
if ls "$WHEELS"/numpy-*.whl "$WHEELS"/pyroute2-*.whl >/dev/null 2>&1; then
  echo "== /opt/netlab/venv with numpy and pyroute2 from $WHEELS"
  mkdir -p "$ROOT/tmp/wheels"
  mount --bind "$WHEELS" "$ROOT/tmp/wheels"
  chroot "$ROOT" python3 -m venv /opt/netlab/venv
  chroot "$ROOT" /opt/netlab/venv/bin/pip install -q --no-index --find-links /tmp/wheels numpy pyroute2
  umount "$ROOT/tmp/wheels"
fi
chroot "$ROOT" apt-get clean
extlinux --install "$ROOT/boot/extlinux" >/dev/null 2>&1

for sub in dev/pts dev proc sys; do umount "$ROOT/$sub"; done
umount "$ROOT"; losetup -d "$LOOP"; LOOP=""

echo "== pack"
qemu-img convert -O qcow2 "$RAW" "$WORK/box.img"
rm -f "$RAW"
cat >"$WORK/metadata.json" <<EOF
{"provider": "libvirt", "format": "qcow2", "virtual_size": $SIZE_GB}
EOF
cat >"$WORK/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
  end
end
EOF
BOX="$OUT/netlab-bookworm.box"
tar -C "$WORK" -cf "$BOX" metadata.json Vagrantfile box.img
vagrant box add --force --name "$NAME" "$BOX" >/dev/null
echo "box $NAME added from $BOX in $(( $(date +%s) - started )) s"
