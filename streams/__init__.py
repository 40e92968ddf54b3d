"""finsentry.streams"""
