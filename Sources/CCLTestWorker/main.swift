import CCL
print("worker")
