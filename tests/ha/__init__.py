"""Tests of the Home Assistant layer."""
