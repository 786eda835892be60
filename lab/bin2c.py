"""Write a binary file as a C array: bin2c.py NAME FILE > header. Page aligned for the module."""
import sys

name, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
print(f"/* generated from {path} by lab/bin2c.py */")
print(f"static const unsigned char {name}[{len(data)}] __aligned(4096) = {{")
for i in range(0, len(data), 16):
    print("\t" + ", ".join(f"0x{b:02x}" for b in data[i:i + 16]) + ",")
print("};")
