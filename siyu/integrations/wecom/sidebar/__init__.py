"""The sidebar (侧边栏): a mobile H5 app WeCom opens beside a chat."""
