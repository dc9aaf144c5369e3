"""What the runtime's services share to talk: the HTTP/1.1 protocol and loopback ports."""
