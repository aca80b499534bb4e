"""The device-side endpoint: `jitr serve`, its MQTT broker over mutual TLS, and the device clients that connect
to it."""
