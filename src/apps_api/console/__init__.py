"""The developer console: server-rendered pages under /console/ (README "Console")."""
