"""The browser layer of the install flow and the developer console: one session cookie (`session`),
one sign-in and sign-out (`accounts`, `signin`), one page renderer with its security headers
(`pages`), and one route class that turns errors into pages (`routes`)."""
