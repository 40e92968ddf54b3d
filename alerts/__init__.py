"""finsentry.alerts"""
