"""The model being trained: the CLIP image tower with a text-initialised head (`classifier`) and
WiSE-FT weight interpolation (`wise`)."""
