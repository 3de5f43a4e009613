"""Reading a release and writing outputs safely: the stage every other stage starts from.

``ids`` (patient ids, image file names), ``release`` (the one reader of every layout), ``clinical``
(the clinical table in one schema), ``checks`` (each case's images, with the problems found),
``geometry`` (grids, crop, resample), ``problems`` (the record every check returns),
``label_maps`` (folders of predicted or true label maps), ``atomic_io`` and ``image_files``
(complete, verified, atomic writes; folder locks).
"""
