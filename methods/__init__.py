"""In-tree paper plugins: one folder per paper, holding its paper.yaml and the code it plugs in."""
