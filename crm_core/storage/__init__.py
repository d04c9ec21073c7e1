"""Azure Table storage adapter: the capture ledger, subscriptions, cursors, unmatched correspondents."""
