#!/usr/bin/python3
"""Reference outputs from Pillow / torchvision for the image2gps data-layer tests.

Called by tests/apps/*_test.cpp; exits 77 when a needed module is missing (the test skips).
  decode IN OUT.png                 ImageOps.exif_transpose(open(IN)).convert("RGB")
  progressive IN.png OUT.jpg        re-encode as a progressive JPEG (quality 92)
  resize IN.png [W H OUT.png]...    Image.resize((W, H), Image.BILINEAR) for each triple
  tv IN.png [OP VALUE OUT.png]...   torchvision.transforms.functional on the PIL image:
                                    brightness|contrast|saturation|hue VALUE, blur SIGMA
"""
import sys


def skip(why):
    print("skip: " + why)
    sys.exit(77)


try:
    from PIL import Image, ImageOps
except ImportError:
    skip("Pillow is not installed for /usr/bin/python3 (apt-get install python3-pil)")


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "decode":
        ImageOps.exif_transpose(Image.open(args[0])).convert("RGB").save(args[1])
    elif cmd == "progressive":
        Image.open(args[0]).convert("RGB").save(args[1], "JPEG", quality=92, progressive=True)
    elif cmd == "resize":
        img = Image.open(args[0]).convert("RGB")
        for i in range(1, len(args), 3):
            w, h, out = int(args[i]), int(args[i + 1]), args[i + 2]
            img.resize((w, h), Image.BILINEAR).save(out)
    elif cmd == "tv":
        try:
            import torchvision.transforms.functional as F
        except ImportError:
            skip("torchvision is not installed for /usr/bin/python3")
        img = Image.open(args[0]).convert("RGB")
        for i in range(1, len(args), 3):
            op, v, out = args[i], float(args[i + 1]), args[i + 2]
            if op == "brightness":
                r = F.adjust_brightness(img, v)
            elif op == "contrast":
                r = F.adjust_contrast(img, v)
            elif op == "saturation":
                r = F.adjust_saturation(img, v)
            elif op == "hue":
                r = F.adjust_hue(img, v)
            elif op == "blur":
                r = F.gaussian_blur(img, [3, 3], [v, v])
            else:
                raise SystemExit("unknown op " + op)
            r.save(out)
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
