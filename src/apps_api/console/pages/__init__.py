"""The console's pages, one router a page family; `console.endpoints` includes them in order."""
