"""finsentry.dashboards"""
