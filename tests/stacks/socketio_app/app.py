"""A python-socketio app under uvicorn: Origins checked on every transport, a namespace that
refuses clients without a token (connect_error), and an echo event."""

import os

import socketio

ALLOWED = os.environ.get("SIO_ALLOWED_ORIGINS", "").split()

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=ALLOWED)
app = socketio.ASGIApp(sio)


@sio.event
async def connect(sid, environ, auth):
    if not auth or auth.get("token") != "letmein":
        raise socketio.exceptions.ConnectionRefusedError("authentication failed")
    await sio.emit("welcome", {"sid": sid}, to=sid)


@sio.event
async def echo(sid, data):
    await sio.emit("echoed", data, to=sid)
