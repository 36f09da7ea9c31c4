// Card payments: mounts Stripe's Payment Element in each [data-stripe-payment] form.
// Stripe.js is loaded from js.stripe.com (it must never be bundled); if it cannot load, the page says so
// and the booking summary and other ways to pay stay usable. No inline scripts and no eval (CSP).
(function () {
  "use strict";

  const STRIPE_JS = "https://js.stripe.com/v3/";
  const LOAD_TIMEOUT_MS = 15000;
  let stripeLoading = null;

  function loadStripe() {
    if (window.Stripe) {
      return Promise.resolve(window.Stripe);
    }
    if (!stripeLoading) {
      stripeLoading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        const timer = window.setTimeout(() => reject(new Error("Stripe.js timed out")), LOAD_TIMEOUT_MS);
        script.src = STRIPE_JS;
        script.async = true;
        script.addEventListener("load", () => {
          window.clearTimeout(timer);
          window.Stripe ? resolve(window.Stripe) : reject(new Error("Stripe.js did not start"));
        });
        script.addEventListener("error", () => {
          window.clearTimeout(timer);
          reject(new Error("Stripe.js could not be loaded"));
        });
        document.head.appendChild(script);
      });
    }
    return stripeLoading;
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function say(form, text) {
    const message = form.querySelector("[data-payment-message]");
    message.textContent = text;
    message.hidden = false;
  }

  function stopLoading(form) {
    const loading = form.querySelector("[data-payment-loading]");
    if (loading) {
      loading.remove();
    }
  }

  async function createIntent(form) {
    // The body is empty on purpose: the server computes the amount from the booking.
    const response = await fetch(form.dataset.intentUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrfToken() },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(body.reason || "We could not start the payment. Please reload the page and try again.");
    }
    return body;
  }

  async function mount(form, StripeJs) {
    const stripe = StripeJs(form.dataset.publishableKey);
    const intent = await createIntent(form);
    const elements = stripe.elements({ clientSecret: intent.client_secret });
    const paymentElement = elements.create("payment");
    const button = form.querySelector("[data-pay]");
    paymentElement.on("ready", () => {
      stopLoading(form);
      button.hidden = false;
      button.disabled = false;
    });
    paymentElement.mount(form.querySelector("[data-payment-element]"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      const result = await stripe.confirmPayment({ elements, confirmParams: { return_url: form.dataset.returnUrl } });
      // Only reached when the payment could not be confirmed (success redirects to the return page).
      button.disabled = false;
      button.removeAttribute("aria-busy");
      say(form, result.error ? result.error.message : "The payment could not be completed. Please try again.");
    });
  }

  function start(form) {
    loadStripe()
      .then((StripeJs) => mount(form, StripeJs).catch((error) => {
        stopLoading(form);
        say(form, error.message);
      }))
      .catch(() => {
        stopLoading(form);
        form.classList.add("stripe-unavailable");
        say(form, form.dataset.unavailable);
      });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form[data-stripe-payment]").forEach(start);
  });
})();
