"""A scenario across Vagrant VMs: the same plan, endpoints and replayers as a
namespace lab, on a stock kernel with real netem (see docs/vagrant.md).

``node`` and ``clock`` run inside the VMs and import only the standard
library and ``shaping``; the rest runs on the machine that drives the VMs.
"""
