"""Analysis tools of the DropGraph paper: Grad-CAM (:mod:`.gradcam`) and
training curves (:mod:`.curves`)."""
