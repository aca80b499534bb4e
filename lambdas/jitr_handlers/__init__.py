"""Thin Lambda entry points over the domain package."""
