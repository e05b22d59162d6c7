"""The proxy is composed with its fronts at the edge (issue 22, item 4): proxy/ imports
no front, the web no terminal rendering, no module imports itself back; a front is
mounted on the proxy's app by its caller, behind the proxy's guard."""

from __future__ import annotations

import ast
from pathlib import Path

import aiohttp
from aiohttp import web

from sentinel_ws_proxy.proxy.config import ProxyConfig
from sentinel_ws_proxy.proxy.server import ProxyServer
from sentinel_ws_proxy.settings import parse_upstream
from tests.conftest import within

PACKAGE = Path(__file__).resolve().parent.parent / "sentinel_ws_proxy"
NAME = PACKAGE.name


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = (NAME, *path.relative_to(PACKAGE).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, name: str, *, module_level: bool) -> set[str]:
    """The package's modules this one imports (all of them, or those its import runs:
    not inside functions, nor under TYPE_CHECKING)."""
    known = modules()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    if module_level:
        for node in ast.walk(tree):
            typing_only = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            if typing_only or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                skipped.update(id(n) for n in ast.walk(node) if n is not node or typing_only)
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            # Itself, or a package it is in: already being imported when it runs.
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def assert_imports_none(package: str, *forbidden: str) -> None:
    """No module of `package` imports anything of `forbidden`, at any level."""
    for name, path in modules().items():
        if name.startswith(f"{NAME}.{package}"):
            wrong = {
                t
                for t in imports(path, name, module_level=False)
                if t.startswith(tuple(f"{NAME}.{f}" for f in forbidden))
            }
            assert not wrong, f"{name} imports {sorted(wrong)}"


def test_the_proxy_imports_no_front():
    assert_imports_none("proxy.", "web", "cli", "analysis")


def test_the_web_does_not_import_terminal_rendering():
    assert_imports_none("web.", "cli")


def test_no_module_imports_itself_back():
    graph = {name: imports(path, name, module_level=True) for name, path in modules().items()}

    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return trail
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        return None

    for name in graph:
        found = cycle_from(name)
        assert found is None, " -> ".join([*found, name])


async def test_a_mounted_front_is_served_on_the_proxys_port_behind_its_guard(upstream):
    url, _ = upstream

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"front": "mounted"})

    def mount(app: web.Application) -> None:
        app.router.add_get("/_sentinel/extra/hello", hello)

    config = ProxyConfig(listen_port=0, upstream=parse_upstream(url), db_path=None)
    server = ProxyServer(config, mounts=[mount])
    await within(server.start())
    try:
        async with aiohttp.ClientSession() as http:
            async with await within(http.get(f"{server.url}/_sentinel/extra/hello")) as answer:
                assert answer.status == 200
                assert await answer.json() == {"front": "mounted"}
            evil = {"Origin": "http://evil.example"}
            async with await within(
                http.get(f"{server.url}/_sentinel/extra/hello", headers=evil)
            ) as answer:
                assert answer.status == 403  # the proxy's guard covers what is mounted on it
            async with await within(http.get(f"{server.url}/_sentinel/status")) as answer:
                assert answer.status == 200  # the admin API is still there
    finally:
        await within(server.stop(), 20)
