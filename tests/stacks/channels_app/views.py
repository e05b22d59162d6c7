from django.http import HttpResponse

PAGE = """<!doctype html><html><head><title>%(title)s</title></head><body>
<h1>%(title)s</h1><p>socket: <span id="socket-status">connecting</span></p>
<a id="next" href="%(next)s">next page</a>
<script>
let delay = 200;
function connect() {
  const ws = new WebSocket(`ws://${location.host}/ws/mission-updates/`);
  ws.onopen = () => {
    delay = 200;
    document.getElementById("socket-status").textContent = "connected";
    document.body.dataset.opens = (+(document.body.dataset.opens || 0)) + 1;
  };
  ws.onmessage = (e) => { document.body.dataset.last = e.data; };
  ws.onclose = (e) => {
    document.getElementById("socket-status").textContent = `closed ${e.code}`;
    setTimeout(connect, delay); delay = Math.min(delay * 2, 2000);
  };
}
connect();
</script></body></html>"""


def page_one(request):
    return HttpResponse(PAGE % {"title": "Page one", "next": "/two/"})


def page_two(request):
    return HttpResponse(PAGE % {"title": "Page two", "next": "/"})
