# dangling.el: a small directed graph with dangling vertices, made for
# ember's tests (no outside source). 8 vertices (0-7), 12 directed edges.
# Vertices 5, 6 and 7 have no out-edges (dangling); every vertex has an
# in-edge. 3 -> 4 -> 3 is a cycle. See data/README.
0 1
0 2
0 3
1 2
1 6
2 0
2 3
2 5
3 4
3 7
4 3
4 5
