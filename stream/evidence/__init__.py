"""The evidence step of the events app (docs/events.md "Evidence"): the frames of an event's
window read back from harclip.frames (`frames`), its snapshot, thumbnail and clip (`media`), and
the consumer that writes them to the object store and republishes the event (`service`)."""
