import json

from channels.generic.websocket import AsyncWebsocketConsumer


class Missions(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()
        await self.send(json.dumps({"event_type": "connection_established"}))

    async def receive(self, text_data=None, bytes_data=None):
        if text_data == "restart":
            await self.close(code=1012)  # what a server going down for a restart sends
            return
        await self.send(text_data=text_data, bytes_data=bytes_data)


class Private(AsyncWebsocketConsumer):
    """For logged-in users only: an anonymous handshake is refused (403)."""

    async def connect(self):
        if not self.scope["user"].is_authenticated:
            await self.close()
            return
        await self.accept()
