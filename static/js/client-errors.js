// Reports uncaught errors and unhandled promise rejections on the checkout page to POST /errors.
// Same origin, no cookies needed; at most a few reports per page view, each well under the 8 KB limit.
(() => {
  const script = document.currentScript;
  const endpoint = (script && script.dataset.endpoint) || "/errors";
  const MAX_REPORTS = 5;
  let sent = 0;

  const clip = (value, length) => String(value || "").slice(0, length);

  const report = (message, stack) => {
    if (sent >= MAX_REPORTS || !message) {
      return;
    }
    sent += 1;
    const body = JSON.stringify({
      message: clip(message, 1000),
      stack: clip(stack, 5000),
      url: window.location.pathname,
      user_agent: clip(navigator.userAgent, 300),
    });
    fetch(endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
      credentials: "same-origin",
      keepalive: true,
    }).catch(() => {});
  };

  window.addEventListener("error", (event) => {
    report(event.message, event.error && event.error.stack);
  });
  window.addEventListener("unhandledrejection", (event) => {
    const reason = event.reason;
    report((reason && reason.message) || reason, reason && reason.stack);
  });
})();
