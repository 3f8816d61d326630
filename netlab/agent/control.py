"""The agent's control API: HTTP (aiohttp) over a Unix socket, in its own thread.

    GET  /health       {"ok": true, "decisions": N, "contract", "obs_size", "step_ms",
                       "window_ms", "device"}: what the lab needs to start the agent's flows
    GET  /stats        counters, decision-latency percentiles and histogram, misses
    POST /load         {"checkpoint": PATH} → the new weights serve from the next
                       decision on (no request is dropped); 409 if the new policy's
                       contract or sizes differ from the flows'
    POST /drain        transitions since the last drain, as a .npy image (structured
                       dtype, no pickle); ``?format=json`` for lists

The checkpoint is read and built in this thread; the serving loop only swaps
a reference between two rounds of decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from netlab.agent.checkpoints import load_policy
from netlab.agent.transitions import to_npy
from netlab.errors import NetlabError

if TYPE_CHECKING:
    from netlab.agent.server import Agent


def build_app(agent: Agent) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        info = agent.policy.info
        return web.json_response({"ok": True, "decisions": agent.counters["decisions"],
                                  "contract": info.contract, "obs_size": info.obs_size,
                                  "step_ms": info.step_ms,
                                  "window_ms": info.window_ms, "device": agent.device})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(agent.snapshot())

    async def load(request: web.Request) -> web.Response:
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        checkpoint = body.get("checkpoint") if isinstance(body, dict) else None
        if not isinstance(checkpoint, str):
            return web.json_response({"error": "body must be {\"checkpoint\": PATH}"},
                                     status=400)
        loop = asyncio.get_running_loop()
        try:
            policy = await loop.run_in_executor(None, load_policy, checkpoint)
        except NetlabError as exc:
            return web.json_response({"error": exc.what, "where": exc.where, "fix": exc.fix},
                                     status=400)
        try:
            pending = await loop.run_in_executor(None, agent.reload, policy, checkpoint)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        except TimeoutError as exc:
            return web.json_response({"error": str(exc)}, status=503)
        return web.json_response({"loaded": checkpoint,
                                  "swapped_after_decision": pending.swapped_after,
                                  "reloads": agent.counters["reloads"]})

    async def drain(request: web.Request) -> web.Response:
        rows = agent.transitions.drain()
        if request.query.get("format") == "json":
            return web.json_response({name: rows[name].tolist() for name in rows.dtype.names
                                      or ()})
        return web.Response(body=to_npy(rows), content_type="application/octet-stream",
                            headers={"X-Transitions": str(len(rows))})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats)
    app.router.add_post("/load", load)
    app.router.add_post("/drain", drain)
    return app


class ControlServer:
    """Runs the app on ``path`` (mode 0600) in a daemon thread."""

    def __init__(self, agent: Agent, path: Path) -> None:
        self.agent = agent
        self.path = path
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="agent-control", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise NetlabError(f"cannot start the control API: {self._error}",
                              where=str(self.path), fix="choose a writable --control path")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        if self._runner is not None:
            self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    async def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._runner = web.AppRunner(build_app(self.agent), access_log=None)
        await self._runner.setup()
        old = os.umask(0o177)
        try:
            await web.UnixSite(self._runner, str(self.path)).start()
        finally:
            os.umask(old)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
