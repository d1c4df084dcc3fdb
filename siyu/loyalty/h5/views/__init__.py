"""Pages of the member H5 center (included by `siyu.loyalty.h5.public`)."""
