"""CRMService for Azure: customer e-mail capture and calendar sync for NET Genium.

The pure core (addresses, mail, directory, orders, html_text, capture_decision, settings) takes
plain data and returns decisions; adapters for Graph, NET Genium and storage live in their own
folders and are imported only by the use cases that need them.
"""
