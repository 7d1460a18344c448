"""Thin REST and websocket handlers: validate, call the registry, render models."""
