"""Input code: palindromes made on the device, image sources read into uint8 arrays."""
