"""What `sentinel-ws monitor` watches, without the terminal: three sources and the state
they fill.

- `state`: the state objects (`LiveState`, `RecordingState`), the rows they hold, and
  the face both recording sources show the dashboard (`RecordingSource`).
- `live`: a live server, its status endpoints polled over HTTP and a WebSocket held open.
- `follow`: a recording read again each interval while the proxy writes it.
- `replay`: a recording played back at Nx speed.

Drawing, keys and the dashboard loop are the CLI's (`cli/monitor_view.py`,
`cli/dashboard.py`); nothing here imports them.
"""
