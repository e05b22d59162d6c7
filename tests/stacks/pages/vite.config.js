// Vite's dev server for sentinel-ws-proxy's page-model tests: the page, its HMR socket
// (subprotocol vite-hmr, path /) and a proxy of /api and /ws to $BACKEND.
//
// HMR follows the page's origin: with no server.ws (formerly server.hmr) host, port or
// clientPort, /@vite/client connects to `${import.meta.url's hostname}:${its port}/`, i.e.
// through whatever served the page (our proxy). Setting clientPort would pin one port.
// allowedHosts: true because the Host Vite sees is the proxy's or the upstream's, as the
// proxy chooses (IP literals and localhost pass Vite's check anyway; names would not).
import { defineConfig } from "vite";

const backend = process.env.BACKEND || "http://127.0.0.1:8765";

// What reached Vite: each request's Host and Sec-Fetch-* (GET /__seen answers the list).
function seenRequests() {
  const seen = [];
  const record = (req, upgrade) => {
    const h = req.headers;
    seen.push({
      t: Date.now() / 1000, method: req.method, url: req.url, upgrade,
      host: h.host ?? null, origin: h.origin ?? null,
      secFetchMode: h["sec-fetch-mode"] ?? null, secFetchDest: h["sec-fetch-dest"] ?? null,
      secFetchSite: h["sec-fetch-site"] ?? null, protocol: h["sec-websocket-protocol"] ?? null,
    });
    if (seen.length > 2000) seen.splice(0, seen.length - 2000);
  };
  return {
    name: "seen-requests",
    configureServer(server) {
      server.httpServer?.on("upgrade", (req) => record(req, true));
      server.middlewares.use((req, res, next) => {
        if (req.url === "/__seen") {
          res.setHeader("Content-Type", "application/json");
          res.end(JSON.stringify(seen));
          return;
        }
        record(req, false);
        next();
      });
    },
  };
}

export default defineConfig({
  appType: "mpa",
  clearScreen: false,
  logLevel: "info",
  plugins: [seenRequests()],
  optimizeDeps: { noDiscovery: true, include: [] },
  server: {
    host: "127.0.0.1",
    strictPort: true,
    allowedHosts: true,
    proxy: {
      "/api": { target: backend },
      "/ws": { target: backend, ws: true },
    },
  },
});
