"""What attn shows, in every format: what a command shows (view), the data formats
(JSON, CSV, .npy), Markdown, the heat-map tables, pictures of them (SVG, HTML), explain's
panels, and the table of formats that ties them to the command line (formats).
Returns text, bytes or rich renderables; never prints.
"""
