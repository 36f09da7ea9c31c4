"""Provider webhook receivers (Stripe, PayPal IPN): verify, store, acknowledge, enqueue."""
