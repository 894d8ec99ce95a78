"""Process entry points (scheduler, result), the IPC message structs and the ZMQ channels between them."""
