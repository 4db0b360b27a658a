/* Flametree Web Widget. One script, no framework, no other requests than its own
 * WebSocket. Everything a visitor or the agent writes is shown with textContent: as
 * text, never as HTML. The visitor's anonymous id and the conversation are kept in
 * localStorage, so a reload continues the conversation. */
(function () {
  "use strict";
  var C = __FLAMETREE_WIDGET_CONFIG__;
  var loaded = (window.__flametreeWidgets = window.__flametreeWidgets || {});
  if (loaded[C.id]) return;
  loaded[C.id] = true;

  var KEY = "flametree-widget:" + C.id + ":";
  function load(k, d) {
    try {
      var v = localStorage.getItem(KEY + k);
      return v === null ? d : JSON.parse(v);
    } catch (e) {
      return d;
    }
  }
  function save(k, v) {
    try {
      localStorage.setItem(KEY + k, JSON.stringify(v));
    } catch (e) {
      /* private mode or full: the conversation lasts as long as the page */
    }
  }
  function randomId() {
    var a = new Uint8Array(16);
    crypto.getRandomValues(a);
    var s = "";
    for (var i = 0; i < a.length; i++) s += ("0" + a[i].toString(16)).slice(-2);
    return s;
  }

  var visitor = load("visitor", "");
  if (!/^[A-Za-z0-9_-]{8,64}$/.test(visitor)) {
    visitor = randomId();
    save("visitor", visitor);
  }
  // {id, who: "me" | "agent", text, state: "sending" | "sent" | "failed"}
  var log = load("log", []);
  if (!Array.isArray(log)) log = [];
  var colour = /^#[0-9A-Fa-f]{6}$/.test(C.colour) ? C.colour : "#E25822";
  var left = C.position === "bottom-left";
  var allowed = C.origins.indexOf(location.origin.toLowerCase()) >= 0;

  function el(tag, props, text) {
    var e = document.createElement(tag);
    for (var k in props) e.setAttribute(k, props[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  var css =
    "#ftw-root{all:initial;position:fixed;bottom:20px;" + (left ? "left" : "right") + ":20px;" +
    "z-index:2147483000;font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d1d1f}" +
    "#ftw-root *{box-sizing:border-box;font:inherit}" +
    "#ftw-launcher{width:56px;height:56px;border-radius:50%;border:0;cursor:pointer;color:#fff;" +
    "background:" + colour + ";box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;" +
    "align-items:center;justify-content:center}" +
    "#ftw-panel{position:absolute;bottom:70px;" + (left ? "left" : "right") + ":0;width:340px;" +
    "max-width:calc(100vw - 40px);height:460px;max-height:calc(100vh - 110px);background:#fff;" +
    "border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column;" +
    "overflow:hidden}" +
    "#ftw-panel[hidden]{display:none}" +
    "#ftw-head{background:" + colour + ";color:#fff;padding:12px 14px;display:flex;" +
    "align-items:center;justify-content:space-between;font-weight:600}" +
    "#ftw-close{border:0;background:transparent;color:#fff;font-size:20px;line-height:1;cursor:pointer}" +
    "#ftw-status{padding:6px 12px;font-size:12px;color:#8a1c1c;background:#fff4f2}" +
    "#ftw-status:empty{display:none}" +
    "#ftw-log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;" +
    "background:#f7f7f8}" +
    ".ftw-msg{max-width:80%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;" +
    "overflow-wrap:anywhere}" +
    ".ftw-me{align-self:flex-end;background:" + colour + ";color:#fff}" +
    ".ftw-agent{align-self:flex-start;background:#fff;border:1px solid #e3e3e6}" +
    ".ftw-failed{opacity:.6}" +
    ".ftw-note{align-self:flex-end;font-size:11px;color:#8a1c1c;margin-top:-6px}" +
    "#ftw-form{display:flex;border-top:1px solid #e3e3e6}" +
    "#ftw-input{flex:1;border:0;padding:12px;outline:none;background:#fff}" +
    "#ftw-send{border:0;background:transparent;color:" + colour + ";font-weight:600;" +
    "padding:0 14px;cursor:pointer}";

  var root = el("div", { id: "ftw-root" });
  root.appendChild(el("style", {}, css));
  var panel = el("div", { id: "ftw-panel", role: "dialog", "aria-label": C.title });
  panel.hidden = true;
  var head = el("div", { id: "ftw-head" });
  head.appendChild(el("span", { id: "ftw-title" }, C.title));
  var close = el("button", { id: "ftw-close", type: "button", "aria-label": "Close chat" }, "\u00d7");
  head.appendChild(close);
  var status = el("div", { id: "ftw-status", role: "status" });
  var list = el("div", { id: "ftw-log", role: "log", "aria-live": "polite" });
  var form = el("form", { id: "ftw-form" });
  var input = el("input", {
    id: "ftw-input",
    type: "text",
    autocomplete: "off",
    maxlength: String(C.max_chars),
    placeholder: "Type a message\u2026",
    "aria-label": "Message"
  });
  var send = el("button", { id: "ftw-send", type: "submit" }, "Send");
  form.appendChild(input);
  form.appendChild(send);
  panel.appendChild(head);
  panel.appendChild(status);
  panel.appendChild(list);
  panel.appendChild(form);
  var launcher = el("button", { id: "ftw-launcher", type: "button", "aria-label": "Open chat: " + C.title });
  launcher.innerHTML =
    '<svg width="26" height="26" viewBox="0 0 24 24" fill="currentColor" aria-hidden="true">' +
    '<path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>';
  root.appendChild(panel);
  root.appendChild(launcher);

  function setStatus(text) {
    status.textContent = text || "";
  }

  function render() {
    list.textContent = "";
    if (C.greeting) list.appendChild(el("div", { "class": "ftw-msg ftw-agent ftw-greeting" }, C.greeting));
    for (var i = 0; i < log.length; i++) {
      var m = log[i];
      var cls = "ftw-msg " + (m.who === "me" ? "ftw-me" : "ftw-agent");
      if (m.state === "failed") cls += " ftw-failed";
      list.appendChild(el("div", { "class": cls, "data-id": m.id }, m.text));
      if (m.state === "failed") list.appendChild(el("div", { "class": "ftw-note" }, "Not sent"));
    }
    list.scrollTop = list.scrollHeight;
  }

  function remember() {
    if (log.length > 200) log = log.slice(log.length - 200);
    save("log", log);
  }

  function find(id) {
    for (var i = 0; i < log.length; i++) if (log[i].id === id) return log[i];
    return null;
  }

  var ws = null;
  var retries = 0;
  var timer = null;

  function transmit(m) {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({ t: "msg", id: m.id, text: m.text }));
  }

  // Messages not yet acknowledged go again after a reconnect; flametree answers each once.
  function flush() {
    for (var i = 0; i < log.length; i++) {
      if (log[i].who === "me" && log[i].state === "sending") transmit(log[i]);
    }
  }

  function onFrame(f) {
    if (f.t === "status") {
      setStatus(f.online ? "" : f.text || C.title + " is offline right now. Please try again later.");
      flush();
    } else if (f.t === "ack") {
      var m = find(f.id);
      if (m) {
        m.state = "sent";
        remember();
      }
    } else if (f.t === "reply") {
      if (!find(f.id)) {
        log.push({ id: f.id, who: "agent", text: String(f.text) });
        remember();
        render();
      }
    } else if (f.t === "error") {
      setStatus(f.text);
      if (f.code === "busy") {
        setTimeout(flush, 3000);
      } else if (f.id) {
        var failed = find(f.id);
        if (failed) {
          failed.state = "failed";
          remember();
          render();
        }
      }
    }
  }

  function connect() {
    if (!allowed || ws) return;
    ws = new WebSocket(C.chat_url + "?visitor=" + encodeURIComponent(visitor));
    ws.onopen = function () {
      retries = 0;
    };
    ws.onmessage = function (ev) {
      var f;
      try {
        f = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      onFrame(f);
    };
    ws.onclose = function () {
      ws = null;
      setStatus("Connecting to " + C.title + "\u2026");
      if (!timer) {
        var wait = Math.min(30000, 1000 * Math.pow(2, retries++));
        timer = setTimeout(function () {
          timer = null;
          connect();
        }, wait);
      }
    };
  }

  function open(on) {
    panel.hidden = !on;
    save("open", on);
    if (on) {
      if (!allowed) {
        setStatus("This chat is not available on this site.");
        input.disabled = true;
        send.disabled = true;
      }
      connect();
      render();
      input.focus();
    }
  }

  launcher.addEventListener("click", function () {
    open(panel.hidden);
  });
  close.addEventListener("click", function () {
    open(false);
  });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text || !allowed) return;
    if (text.length > C.max_chars) {
      setStatus("Your message is too long (at most " + C.max_chars + " characters). Please shorten it.");
      return;
    }
    var m = { id: randomId().slice(0, 20), who: "me", text: text, state: "sending" };
    log.push(m);
    remember();
    render();
    input.value = "";
    transmit(m);
  });

  function mount() {
    document.body.appendChild(root);
    if (load("open", false)) open(true);
    else if (log.length) connect();
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
