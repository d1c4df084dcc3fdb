"""Live codes as real WeCom 「联系我」 and group-join ways."""
