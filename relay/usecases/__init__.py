"""What relay does, once for every face: send, deliver, ask and wait, wake with its guard, discover,
gc, doctor. Imports the store, host, domain and util layers, never a face."""
