"""Measurements of models: complexity (params, MACs, memory, time) and architecture tables."""
