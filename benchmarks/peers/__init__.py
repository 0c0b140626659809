"""The peers the serving benchmark compares ``capsule serve`` against, each the recipe as users write it."""
