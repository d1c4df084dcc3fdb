/* The sidebar (侧边栏) page script: JS-SDK config → agentConfig → read the open chat / send messages.
   Works with WeCom's jweixin + jwxwork, and with the fake WeCom's shim (same `wx` API). */
(function () {
  "use strict";
  var root = document.getElementById("sidebar");
  var status = document.getElementById("sdk-status");
  var text = window.SIDEBAR_TEXT || {};
  var csrf = root ? root.getAttribute("data-csrf") : "";
  var page = document.querySelector("[data-page]");
  var kind = page ? page.getAttribute("data-page") : "";

  function show(state, message) {
    if (!status) return;
    status.setAttribute("data-state", state);
    if (message !== undefined) status.textContent = message;
  }

  function ok(res, name) {
    var msg = (res && (res.err_msg || res.errMsg)) || "";
    return msg === name + ":ok";
  }

  function afterAgent() {
    if (kind === "home") {
      window.wx.invoke("getCurExternalContact", {}, function (res) {
        if (ok(res, "getCurExternalContact") && res.userId) {
          window.location.href = "/sidebar/c?eu=" + encodeURIComponent(res.userId);
        } else {
          show("no-chat", text.noChat);
        }
      });
      return;
    }
    show("ready", "");
    Array.prototype.forEach.call(document.querySelectorAll(".sb-send"), function (button) {
      button.disabled = false;
      button.addEventListener("click", function () { send(button); });
    });
  }

  function send(button) {
    var message = JSON.parse(button.getAttribute("data-message"));
    message.enterChat = false;
    button.disabled = true;
    window.wx.invoke("sendChatMessage", message, function (res) {
      button.disabled = false;
      if (!ok(res, "sendChatMessage")) {
        button.textContent = text.sendFailed;
        return;
      }
      button.textContent = text.sent;
      button.classList.add("sb-sent");
      var body = new URLSearchParams();
      body.set("csrf_token", csrf);
      body.set("kind", button.getAttribute("data-kind"));
      body.set("item_id", button.getAttribute("data-id"));
      fetch("/sidebar/c/" + page.getAttribute("data-customer-id") + "/sent", {
        method: "POST", body: body, credentials: "same-origin"
      });
    });
  }

  if (!window.wx) { show("failed", text.sdkFailed); return; }
  var url = window.location.href.split("#")[0];
  var cfg = null;
  var retried = false;
  var started = false;

  // WeCom's client rejected a signature (e.g. the ticket siyu cached was replaced): ask once more
  // with refresh=1, which makes siyu fetch new tickets (at most once a minute per corp).
  function failed() {
    if (!retried) { retried = true; load(true); return; }
    show("failed", text.sdkFailed);
  }

  function load(refresh) {
    fetch("/sidebar/jssdk?url=" + encodeURIComponent(url) + (refresh ? "&refresh=1" : ""), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("jssdk " + r.status); return r.json(); })
      .then(function (value) { cfg = value; window.wx.config(cfg.config); })
      .catch(function () { show("failed", text.sdkFailed); });
  }

  window.wx.error(failed);
  window.wx.ready(function () {
    var agent = {};
    Object.keys(cfg.agentConfig).forEach(function (k) { agent[k] = cfg.agentConfig[k]; });
    agent.success = function () { if (started) return; started = true; afterAgent(); };
    agent.fail = failed;
    window.wx.agentConfig(agent);
  });
  load(false);
})();
