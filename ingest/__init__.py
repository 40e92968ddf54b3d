"""finsentry.ingest"""
