"""Image classification data: CIFAR pickles, image-folder trees (ImageNet), and the digits proxy."""
