"""The operator API (`/internal/v1/organizations...`) and the one path of operator changes.

`service` is what both the operator API and `apps-api admin` call: a change of features,
permissions or partnerships has the same consequences whichever way it comes (docs/operator-api.md).
"""
