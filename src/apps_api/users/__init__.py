"""An organization's users (the collection of the `users` channel)."""
