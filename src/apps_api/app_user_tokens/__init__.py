"""App-user tokens: the provider mints, lists and revokes API tokens of its installations' app users."""
