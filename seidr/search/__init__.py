"""The SEIDR loop: programs in a tree, selection of parents, and the loop that grows the tree."""
