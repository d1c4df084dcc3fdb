"""Order imports from CSV/XLSX exports (Taobao/Tmall, JD, Youzan, siyu's template), run as a job."""
