"""Commerce (转化): products, orders from every platform, refunds, coupons."""
