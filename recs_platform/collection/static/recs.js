// placeholder: the tracker is written next
