"""The stages between decoding and encoding, in the order data flows through them.

Each is a plain function over numpy arrays whose docstring states shapes, dtypes and ranges:

- :mod:`.segment`: sRGB pixels -> the segmenter's foreground probability (any registry model, any engine);
- :mod:`.settle`: unsure regions decided from the photo's colours;
- :mod:`.touchup`: keep / remove points and boxes choose the regions (the promptable segmenter);
- :mod:`.trimap`: probability -> foreground / unknown / background;
- :mod:`.matte`: alpha at every native pixel of the unknown band (guided filter, closed form, colour line);
- :mod:`.foreground`: foreground colours without the old background;
- :mod:`.compose`, :mod:`.backdrop`: transparent, colour, photo background, shadow, crop, layout;
- :mod:`.tiles`: working sizes and band/tile helpers shared by the stages above.
"""
