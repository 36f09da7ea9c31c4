// Small progressive enhancements. No inline handlers and no eval: the CSP forbids both.
document.addEventListener("submit", (event) => {
  // <form data-confirm="…"> asks before a destructive action (htmx forms use hx-confirm).
  const message = event.target.dataset ? event.target.dataset.confirm : null;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
