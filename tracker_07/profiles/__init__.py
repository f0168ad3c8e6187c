"""Saved profiles: the `.prof` files of profile mode, their index, and what is read from them."""
