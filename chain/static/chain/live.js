// The live chain's WebSocket (protocol: docs/websocket.md): one connection per page, reconnected
// with backoff; every frame is acknowledged once applied, which is how the server knows the page
// keeps up (a page that does not gets a fresh snapshot instead of a backlog).

export const CLOSE_DISABLED_ASSET = 4403;
export const CLOSE_UNKNOWN_ASSET = 4404;

export class LiveSocket {
  constructor({ path, view, onFrame, onConnection }) {
    this.path = path;
    this.view = view;
    this.onFrame = onFrame;
    this.onConnection = onConnection;
    this.socket = null;
    this.attempts = 0;
    this.retryTimer = null;
    this.finished = false;
    window.addEventListener("online", () => this.reconnectNow());
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams();
    if (this.view.expiry) query.set("expiry", this.view.expiry);
    if (this.view.settle) query.set("settle", this.view.settle);
    const search = query.toString();
    return `${scheme}://${location.host}${this.path}${search ? `?${search}` : ""}`;
  }

  connect() {
    clearTimeout(this.retryTimer);
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempts = 0;
      this.onConnection("open");
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onFrame(frame);
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ack", seq: frame.seq }));
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (event.code === CLOSE_DISABLED_ASSET || event.code === CLOSE_UNKNOWN_ASSET) {
        this.finished = true;
        this.onConnection("refused", event.code);
        return;
      }
      const ceiling = Math.min(10000, 500 * 2 ** this.attempts);
      this.attempts += 1;
      this.retryTimer = setTimeout(() => this.connect(), ceiling / 2 + Math.random() * (ceiling / 2));
      this.onConnection("reconnecting");
    });
  }

  reconnectNow() {
    if (this.finished || (this.socket && this.socket.readyState <= WebSocket.OPEN)) return;
    this.connect();
  }

  // The server answers a view change with a snapshot of the new view; a closed socket asks for it
  // in the URL when it reconnects.
  setView(view) {
    this.view = view;
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: "view", expiry: view.expiry, settle: view.settle }));
    }
  }
}
